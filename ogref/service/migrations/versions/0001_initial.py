"""initial schema: every table of ogref.service.db (issue 12)

Revision ID: 0001
Revises:
Create Date: 2026-12-03 22:08:33.970200
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engine_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_engine_settings")),
    )
    op.create_table(
        "org_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_units")),
        sa.UniqueConstraint("name", name=op.f("uq_org_units_name")),
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("multicast_fec", sa.String(length=32), nullable=False),
        sa.Column("hw", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repositories")),
        sa.UniqueConstraint("name", name=op.f("uq_repositories_name")),
    )
    op.create_table(
        "site_operations",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_site_operations")),
    )
    op.create_table(
        "site_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("engine_preset", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_site_settings_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_settings")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'teacher')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)

    op.create_table(
        "classrooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("org_unit_id", sa.Integer(), nullable=False),
        sa.Column("subnet", sa.String(length=43), nullable=False),
        sa.Column("multicast", sa.String(length=128), nullable=False),
        sa.Column("torrent", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_unit_id"],
            ["org_units.id"],
            name=op.f("fk_classrooms_org_unit_id_org_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classrooms")),
        sa.UniqueConstraint("name", name=op.f("uq_classrooms_name")),
    )
    op.create_index(op.f("ix_classrooms_org_unit_id"), "classrooms", ["org_unit_id"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("filesystem", sa.String(length=16), nullable=False),
        sa.Column("data_size", sa.BigInteger(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("compressor", sa.String(length=8), nullable=False),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("base", sa.String(length=255), nullable=False),
        sa.Column("os_name", sa.String(length=255), nullable=False),
        sa.Column("torrent_piece", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('monolithic', 'diff')", name=op.f("ck_images_kind")),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_images_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint(
            "repository_id", "name", "revision", name=op.f("uq_images_repository_id_name_revision")
        ),
    )
    op.create_index("ix_images_repository_name", "images", ["repository_id", "name"], unique=False)

    op.create_table(
        "operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_index", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done')", name=op.f("ck_operations_state")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"],
            ["users.id"],
            name=op.f("fk_operations_submitted_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_operations_state_id", "operations", ["state", "id"], unique=False)
    op.create_index(
        op.f("ix_operations_submitted_by"), "operations", ["submitted_by"], unique=False
    )

    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_user_sessions_expires_at"), "user_sessions", ["expires_at"], unique=False
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)

    op.create_table(
        "computer_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("classroom_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_computer_groups_classroom_id_classrooms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_computer_groups")),
        sa.UniqueConstraint(
            "classroom_id", "name", name=op.f("uq_computer_groups_classroom_id_name")
        ),
    )
    op.create_index(
        op.f("ix_computer_groups_classroom_id"), "computer_groups", ["classroom_id"], unique=False
    )

    op.create_table(
        "user_classrooms",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("classroom_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_user_classrooms_classroom_id_classrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_classrooms_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "classroom_id", name=op.f("pk_user_classrooms")),
    )
    op.create_index(
        op.f("ix_user_classrooms_classroom_id"), "user_classrooms", ["classroom_id"], unique=False
    )

    op.create_table(
        "computers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("ip", sa.String(length=43), nullable=False),
        sa.Column("address", sa.String(length=15), nullable=False),
        sa.Column("classroom_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(length=100), nullable=False),
        sa.Column("windows_needs_reboot", sa.Boolean(), nullable=False),
        sa.Column("disks", sa.JSON(), nullable=False),
        sa.Column("cache", sa.JSON(), nullable=True),
        sa.Column("hw", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["classroom_id"],
            ["classrooms.id"],
            name=op.f("fk_computers_classroom_id_classrooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["computer_groups.id"],
            name=op.f("fk_computers_group_id_computer_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_computers_repository_id_repositories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_computers")),
        sa.UniqueConstraint("name", name=op.f("uq_computers_name")),
    )
    op.create_index(op.f("ix_computers_address"), "computers", ["address"], unique=False)
    op.create_index(op.f("ix_computers_classroom_id"), "computers", ["classroom_id"], unique=False)
    op.create_index(op.f("ix_computers_group_id"), "computers", ["group_id"], unique=False)
    op.create_index(op.f("ix_computers_mac"), "computers", ["mac"], unique=False)
    op.create_index(
        op.f("ix_computers_repository_id"), "computers", ["repository_id"], unique=False
    )

    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("computer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["computer_id"],
            ["computers.id"],
            name=op.f("fk_group_members_computer_id_computers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["computer_groups.id"],
            name=op.f("fk_group_members_group_id_computer_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "position", name=op.f("pk_group_members")),
    )
    op.create_index(
        op.f("ix_group_members_computer_id"), "group_members", ["computer_id"], unique=False
    )

    op.create_table(
        "log_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("computer_id", sa.Integer(), nullable=False),
        sa.Column("operation_id", sa.Integer(), nullable=True),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["computer_id"],
            ["computers.id"],
            name=op.f("fk_log_lines_computer_id_computers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_log_lines_operation_id_operations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_lines")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_log_lines_computer_id_id", "log_lines", ["computer_id", "id"], unique=False)
    op.create_index(op.f("ix_log_lines_operation_id"), "log_lines", ["operation_id"], unique=False)

    op.create_table(
        "operation_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation_id", sa.Integer(), nullable=False),
        sa.Column("computer_id", sa.Integer(), nullable=True),
        sa.Column("computer_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("requested", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("method_used", sa.String(length=32), nullable=True),
        sa.Column("switched", sa.Boolean(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("bytes_moved", sa.BigInteger(), nullable=True),
        sa.Column("checksum_verified", sa.Boolean(), nullable=True),
        sa.Column("stream_md5", sa.String(length=32), nullable=True),
        sa.Column("os_hostname", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("reads", sa.String(length=255), nullable=True),
        sa.Column("writes", sa.String(length=255), nullable=True),
        sa.Column("session_address", sa.String(length=45), nullable=True),
        sa.Column("session_port", sa.Integer(), nullable=True),
        sa.CheckConstraint("role IN ('target', 'source')", name=op.f("ck_operation_records_role")),
        sa.CheckConstraint(
            "status IN ('not_started', 'ok', 'failed', 'crashed', 'refused')",
            name=op.f("ck_operation_records_status"),
        ),
        sa.CheckConstraint(
            "(session_address IS NULL) = (session_port IS NULL)",
            name=op.f("ck_operation_records_session_pair"),
        ),
        sa.ForeignKeyConstraint(
            ["computer_id"],
            ["computers.id"],
            name=op.f("fk_operation_records_computer_id_computers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_operation_records_operation_id_operations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation_records")),
        sa.UniqueConstraint(
            "operation_id",
            "computer_name",
            name=op.f("uq_operation_records_operation_id_computer_name"),
        ),
    )
    op.create_index(
        op.f("ix_operation_records_computer_id"), "operation_records", ["computer_id"], unique=False
    )
    op.create_index(
        op.f("ix_operation_records_operation_id"),
        "operation_records",
        ["operation_id"],
        unique=False,
    )

    op.create_table(
        "os_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("computer_id", sa.Integer(), nullable=False),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=45), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("fstab_root", sa.String(length=255), nullable=True),
        sa.Column("os", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["computer_id"],
            ["computers.id"],
            name=op.f("fk_os_reports_computer_id_computers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_os_reports")),
    )
    op.create_index(
        "ix_os_reports_computer_id_id", "os_reports", ["computer_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("os_reports")
    op.drop_table("operation_records")
    op.drop_table("log_lines")
    op.drop_table("group_members")
    op.drop_table("computers")
    op.drop_table("user_classrooms")
    op.drop_table("computer_groups")
    op.drop_table("user_sessions")
    op.drop_table("operations")
    op.drop_table("images")
    op.drop_table("classrooms")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("site_settings")
    op.drop_table("site_operations")
    op.drop_table("repositories")
    op.drop_table("org_units")
    op.drop_table("engine_settings")
