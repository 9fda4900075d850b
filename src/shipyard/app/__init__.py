"""The application layer: one function per use case over a `Session`; what every front end calls.

A session holds the project (loaded and flattened on first use), the store (opened, recovery
done, on first use), the executors, the actor, the controller's identity and the lease policy,
all passed in. The use cases return frozen dataclasses with masked text, which the CLI renders
and a JSON API serialises as they are (`to_json`). The modules import what is heavy (the store,
the executors, the deploy layer) inside the functions that need it, so a command pays only for
what it uses.
"""
