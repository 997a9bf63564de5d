"""Every context's models in one import, for Alembic and the app factory: importing
this module registers every table. Contexts import each other's models directly."""

import faka.accounts.models  # noqa: F401
import faka.catalog.models  # noqa: F401
import faka.complaints.models  # noqa: F401
import faka.core.storage  # noqa: F401  (the database storage's tables)
import faka.growth.models  # noqa: F401
import faka.inventory.models  # noqa: F401
import faka.ledger.models  # noqa: F401
import faka.messaging.models  # noqa: F401
import faka.orders.models  # noqa: F401
import faka.payments.models  # noqa: F401
import faka.platform.models  # noqa: F401
import faka.reviews.models  # noqa: F401
import faka.risk.models  # noqa: F401
