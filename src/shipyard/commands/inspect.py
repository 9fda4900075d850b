"""What a health round reads on a host besides program states, as scripts and their parsers:
whether the files of the live release are still the ones deployed, where supervisord's program
files point, and which services have a host record under the deploy root.

The checksums of a release are written beside the host record when a deployment records itself
(`sums_script`, run by `commands.record.write_record_script`): one `sha256sum` line for each
file of the release but its marker. A round compares the release with them on the host and
sends back only what differs, so its answer stays small however many files a release has:

- `quick`: a file is changed when its mtime is newer than the checksums file (one `find`, no
  file read), and missing or added by name. What a health round every 30 s can afford.
- deep: every file's checksum is verified (`sha256sum -c`). What `shipyard drift` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.commands.release import MARKER, ReleaseLayout
from shipyard.commands.script import Script, check_path, quote, script
from shipyard.commands.supervisor import SupervisorPaths

# The most lines of differences one instance sends back (the rest are counted, not named).
MOST_LISTED = 50


def sums_path(layout: ReleaseLayout) -> str:
    """The checksums of the live release's files, beside the host record."""
    return f"{layout.service_dir}/deployed.sums"


def sums_lines(layout: ReleaseLayout, revision: str) -> list[str]:
    """Shell lines (for a subshell: they change directory and umask) that write the checksums
    of release `revision`'s files (its marker aside) atomically, 0600: its files may hold
    secrets, and their checksums say something about them. They do not rely on `set -e`
    (a caller may run them where a failure must not stop it)."""
    release, target = quote(layout.release(revision)), quote(sums_path(layout))
    return [
        "umask 077",
        f"cd -- {release} || exit 1",
        f"find . -type f ! -path ./{MARKER} -print0 | LC_ALL=C sort -z"
        f" | xargs -0r sha256sum -- > {target}.tmp-$$ || {{ rm -f -- {target}.tmp-$$; exit 1; }}",
        f"mv -f -- {target}.tmp-$$ {target}",
    ]


def sums_script(layout: ReleaseLayout, revision: str) -> Script:
    """`sums_lines` as a script of their own."""
    return script(sums_lines(layout, revision))


def files_script(layout: ReleaseLayout, revision: str, *, deep: bool) -> Script:
    """Prints one line for each difference between release `revision`'s files and the
    checksums recorded for them (at most MOST_LISTED, then `more N`): `changed PATH`,
    `missing PATH`, `added PATH`; `no-release` when the release is not there, `no-sums` when
    nothing was recorded (a release deployed before checksums were)."""
    release, sums = quote(layout.release(revision)), quote(sums_path(layout))
    if deep:
        changed = (
            f"LC_ALL=C sha256sum --quiet -c -- {sums} 2>/dev/null"
            " | sed -n 's/^\\(.*\\): FAILED open or read$/missing \\1/p;"
            " s/^\\(.*\\): FAILED$/changed \\1/p'"
        )
    else:
        changed = f"find . -type f ! -path ./{MARKER} -newer {sums} -print | sed 's/^/changed /'"
    # Names in the checksums but not on disk, and on disk but not in the checksums.
    by_name = (
        f"find . -type f ! -path ./{MARKER} -print"
        f' | awk \'NR==FNR {{ sub(/^[0-9a-f]+  /, ""); listed[$0] = 1; next }}'
        f' {{ seen[$0] = 1; if (!($0 in listed)) print "added " $0 }}'
        f' END {{ for (name in listed) if (!(name in seen)) print "missing " name }}\''
        f" {sums} -"
    )
    limit = MOST_LISTED
    return script(
        [
            f"cd -- {release} 2>/dev/null || {{ echo no-release; exit 0; }}",
            f"[ -f {sums} ] || {{ echo no-sums; exit 0; }}",
            f"{{ {changed}; {by_name}; }} | LC_ALL=C sort -u | awk -v most={limit}"
            " 'NR <= most { print; next } END { if (NR > most) print \"more \" NR - most }'",
        ]
    )


@dataclass(frozen=True)
class FileChanges:
    """What `files_script` found: paths relative to the release (`./` dropped)."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    more: int = 0  # differences not listed
    no_release: bool = False
    no_sums: bool = False

    @property
    def any(self) -> bool:
        return bool(self.changed or self.missing or self.added or self.more or self.no_release)


def parse_files(stdout: str) -> FileChanges:
    found: dict[str, list[str]] = {"changed": [], "missing": [], "added": []}
    more, no_release, no_sums = 0, False, False
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in found and rest:
            path = rest.removeprefix("./")
            if path not in found[word]:
                found[word].append(path)
        elif word == "more" and rest.strip().isdigit():
            more = int(rest)
        elif line == "no-release":
            no_release = True
        elif line == "no-sums":
            no_sums = True
    # A missing file is named twice by a deep check (sha256sum cannot open it), an added one
    # twice by a quick one (it is newer than the checksums): each is said once, as what it is.
    named = {*found["missing"], *found["added"]}
    changed = [p for p in found["changed"] if p not in named]
    return FileChanges(
        tuple(changed), tuple(found["missing"]), tuple(found["added"]), more, no_release, no_sums
    )


def program_links_script(paths: SupervisorPaths) -> Script:
    """Prints `NAME TARGET` for each program file linked into supervisord's include."""
    programs = quote(paths.programs)
    return script(
        [
            f"cd -- {programs} 2>/dev/null || exit 0",
            "find . -maxdepth 1 -name '*.conf' -printf '%f %l\\n'",
        ]
    )


def parse_program_links(stdout: str) -> dict[str, str]:
    """Program name -> the file its include entry is (a link's target; empty: not a link)."""
    links: dict[str, str] = {}
    for line in stdout.splitlines():
        name, _, target = line.partition(" ")
        if name.endswith(".conf"):
            links[name.removesuffix(".conf")] = target
    return links


def recorded_services_script(root: str) -> Script:
    """Prints the name of each directory under the deploy root that holds a host record: the
    services Shipyard deployed on this host, whether or not the store still knows them."""
    directory = quote(check_path(root, "deploy root"))
    return script(
        [
            f"cd -- {directory} 2>/dev/null || exit 0",
            "find . -mindepth 2 -maxdepth 2 -name deployed.json -printf '%h\\n'",
        ]
    )


def parse_recorded_services(stdout: str) -> tuple[str, ...]:
    names = (line.removeprefix("./") for line in stdout.splitlines())
    return tuple(sorted({n for n in names if n and "/" not in n}))
