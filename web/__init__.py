"""The sync-health web console (``revsync web``) and its login, audit log and pages."""
