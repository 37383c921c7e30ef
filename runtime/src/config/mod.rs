//! The Space configuration read from a README's YAML front matter.
