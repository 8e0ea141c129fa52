"""The Streamlit app: UI state only; every computation calls the package API (as the CLI does)."""
