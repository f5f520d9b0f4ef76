//! Localized templates for acknowledgements, warnings and escalations.
