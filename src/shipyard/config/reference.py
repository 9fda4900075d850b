"""The configuration reference as Markdown, generated from the models' fields and descriptions."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from shipyard.config.models import (
    Artifact,
    Commands,
    HealthCheck,
    Host,
    NginxSettings,
    Project,
    SecretSource,
    Service,
    Site,
    SshSettings,
    Strategy,
    Template,
)

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("project (top level)", Project),
    ("ssh", SshSettings),
    ("secrets.NAME", SecretSource),
    ("sites.NAME", Site),
    ("sites.NAME.hosts.NAME", Host),
    ("host nginx", NginxSettings),
    ("templates.NAME", Template),
    ("artifact", Artifact),
    ("commands", Commands),
    ("health", HealthCheck),
    ("strategy", Strategy),
    ("services.NAME", Service),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1])}" if args else "map"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return ""
    if field.default is None:
        return ""
    return f"`{field.default}`"


def config_reference() -> str:
    """One table per section: field, type, default, meaning."""
    out = []
    for title, model in SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out.append(f"#### `{title}`\n\n{doc}\n")
        out.append("| field | type | default | meaning |\n| --- | --- | --- | --- |")
        for name, field in model.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            kind = _type_name(field.annotation).replace("|", "\\|")
            out.append(f"| `{name}` | {kind} | {_default(field)} | {meaning} |")
        out.append("")
    return "\n".join(out)
