"""The served model: its pin in the source, the artifact each stage serves, proposing a new pin, calling it."""
