//! Integration tests: parse_cases.
