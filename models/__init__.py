"""The shipped model specs (TOML files). This folder is installed as
``plasticity.models``; see ``plasticity/config/models.py`` for how specs are found."""
