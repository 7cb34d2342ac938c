"""Pure rules of konsent: no I/O, no framework, stdlib only."""
