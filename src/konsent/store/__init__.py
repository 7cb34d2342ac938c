"""Persistence: SQLAlchemy tables, repositories scoped by tenant, Alembic migrations."""
