"""Two servers' tool folders for one app: `hr` and `finance`, each with a `notes://recent` resource of the same
scope name (`notes.read`), a prompt, a completion and tools of their own."""
