//! Configuration: one TOML file → validated [`Config`].
