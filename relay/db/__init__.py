"""PostgreSQL persistence: tables, engine, migrations (SQLAlchemy 2 + psycopg 3)."""
