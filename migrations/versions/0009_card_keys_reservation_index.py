"""card keys index in reservation order

Revision ID: 3841f7fdfbd3
Revises: daf49a1b3dcd
Create Date: 2026-11-26 09:33:54.799508

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "3841f7fdfbd3"
down_revision = "daf49a1b3dcd"
branch_labels = None
depends_on = None


def upgrade():

    with op.batch_alter_table("card_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_keys_product_status"))
        batch_op.create_index("ix_card_keys_product_status_id", ["product_id", "status", "id"], unique=False)


def downgrade():

    with op.batch_alter_table("card_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_card_keys_product_status_id")
        batch_op.create_index(batch_op.f("ix_card_keys_product_status"), ["product_id", "status"], unique=False)
