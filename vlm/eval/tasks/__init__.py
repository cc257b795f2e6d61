"""One module per benchmark; `TASKS` imports this package's modules on first lookup, so a new benchmark
is one new file here."""
