"""The input-hygiene rules the web layer applies at every door (#13 finding 8); see domain.inputs."""

from __future__ import annotations

from konsent.domain.inputs import InputProblem, json_problem, loads_json, text_problem

__all__ = ["InputProblem", "json_problem", "loads_json", "text_problem"]
