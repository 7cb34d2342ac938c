"""Print the README configuration table from the Settings class (run after adding a setting)."""

from konsent.settings import Settings

print("| variable | default | what it does |\n|---|---|---|")
for name, field in Settings.model_fields.items():
    default = field.default
    if default is None or hasattr(default, "get_secret_value"):
        default = ""
    print(f"| `KONSENT_{name.upper()}` | `{default}` | {field.description} |")
