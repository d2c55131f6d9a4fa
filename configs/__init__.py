"""The TOML files shipped with benchbox (presets, dataset configs), installed as the
resource package ``benchbox.configs``; see :mod:`benchbox.config.files`. No code."""
