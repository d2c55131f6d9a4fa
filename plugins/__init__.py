"""benchbox built-in plugins, installed as `benchbox_plugins`; each subpackage is one entry point."""
