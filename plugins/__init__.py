"""benchbox built-in plugins, installed as `benchbox_plugins`.

Each subpackage is one entry point of the `benchbox` group."""
