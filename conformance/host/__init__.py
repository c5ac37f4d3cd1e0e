"""Live hosts: facts collected over testinfra's backends (docs/hosts.md)."""
