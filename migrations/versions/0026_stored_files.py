"""stored files: uploads kept in the database

The `database` upload storage (faka/core/storage.py, FAKA_UPLOAD_STORAGE=database) keeps
each uploaded file as a row of `stored_files` and its bytes as 256 KiB rows of
`stored_file_chunks`, so that every web host sees every upload. Both tables stay empty
with the default `local` storage.

Revision ID: 20e1b2c3d4e5
Revises: 20d1b2c3d4e5
Create Date: 2026-12-20 10:12:41.503118

"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "20e1b2c3d4e5"
down_revision = "20d1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stored_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
        sa.UniqueConstraint("area", "name", name=op.f("uq_stored_files_area_name")),
    )
    op.create_table(
        "stored_file_chunks",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["stored_files.id"],
            name=op.f("fk_stored_file_chunks_file_id_stored_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_stored_file_chunks")),
    )


def downgrade():
    op.drop_table("stored_file_chunks")
    op.drop_table("stored_files")
