"""Database: engine, table definitions, the repository and Alembic migrations."""
