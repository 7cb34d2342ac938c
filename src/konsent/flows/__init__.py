"""Use cases: plain functions over a unit of work, one thing a user would name each."""
