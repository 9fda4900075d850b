"""The CLI as a client of `shipyard serve`: the same commands, through the REST API.

`ApiClient` speaks HTTP (httpx) with the caller's token and turns the server's one error shape
back into Shipyard's errors, so that the CLI prints a refusal as it would locally.
`credentials` keeps the tokens `shipyard login` stored (a file only its owner reads).
"""
