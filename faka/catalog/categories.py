"""The operator's categories: create, rename, order, hide, delete.

Categories are the storefront's shelves, in the operator's order (`position`, lower
first). What each state means:

- **Hidden**: buyers do not see the category (the home page lists its products under
  "Other goods" at the end, the product page names no category) and merchants cannot
  choose it for a product; products already in it keep it, stay on sale and can be
  edited without changing it.
- **Deleted**: only a category without live products can be deleted (soft-deleted
  products do not count). Its live products can be moved to another category in the
  same step. The row stays, marked deleted, when soft-deleted products still point at it
  (they are kept for their orders); no page shows it again.

Every change is written to the audit log in its own transaction.
"""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from faka.catalog.models import Category, Product
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.platform import audit

UP = "up"
DOWN = "down"


class InvalidCategory(DomainError):
    message = _l("Enter a Chinese name of 1 to 60 characters; the English name is optional (at most 60).")


class DuplicateCategory(DomainError):
    message = _l("Another category already has this name.")


class CategoryNotEmpty(DomainError):
    """The category still has live products: move them elsewhere first."""

    def __init__(self, product_count: int):
        self.product_count = product_count
        super().__init__(
            _l(
                "Products still in this category: %(count)s. Move them to another category to delete it.",
                count=product_count,
            )
        )


class InvalidMoveTarget(DomainError):
    message = _l("Choose another category to move the products to.")


@dataclass(frozen=True)
class CategoryRow:
    category: Category
    product_count: int  # live products (not soft-deleted), whatever their state


def _live():
    return select(Category).where(Category.deleted_at.is_(None))


def _ordered(query):
    return query.order_by(Category.position, Category.id)


def all_categories() -> list[CategoryRow]:
    """Every category that is not deleted, in the operator's order, with how many live
    products each holds."""
    categories = db.session.execute(_ordered(_live())).scalars().all()
    counts = _product_counts([c.id for c in categories])
    return [CategoryRow(c, counts.get(c.id, 0)) for c in categories]


def _product_counts(category_ids: list[int]) -> dict[int, int]:
    if not category_ids:
        return {}
    return dict(
        db.session.execute(
            select(Product.category_id, func.count())
            .where(Product.category_id.in_(category_ids), Product.deleted_at.is_(None))
            .group_by(Product.category_id)
        ).all()
    )


def live_product_count(category_id: int) -> int:
    return _product_counts([category_id]).get(category_id, 0)


def choosable(current_id: int | None = None) -> list[Category]:
    """The categories a merchant may put a product in: the visible ones in the operator's
    order, and the product's own (`current_id`) even when it is hidden, so editing a
    product never takes it out of its category."""
    condition = Category.hidden.is_(False)
    if current_id is not None:
        condition = condition | (Category.id == current_id)
    return list(db.session.execute(_ordered(_live().where(condition))).scalars())


def check_choosable(category_id: int | None, current_id: int | None = None) -> Category:
    """The category if a product may be put in it (see `choosable`), else NotFound.

    Takes a shared lock on the category's row, so that a product cannot be saved into a
    category while an operator deletes it: the deletion waits for the save (and then
    counts its product), or the save waits for the deletion (and then finds no category).
    Call it inside the write transaction that saves the product."""
    if category_id is None:
        raise NotFound()
    query = _live().where(Category.id == category_id)
    if category_id != current_id:
        query = query.where(Category.hidden.is_(False))
    category = db.session.execute(query.with_for_update(read=True)).scalar_one_or_none()
    if category is None:
        raise NotFound()
    return category


def get(category_id: int) -> Category:
    category = db.session.execute(_live().where(Category.id == category_id)).scalar_one_or_none()
    if category is None:
        raise NotFound()
    return category


def _for_update(category_id: int) -> Category:
    category = db.session.execute(_live().where(Category.id == category_id).with_for_update()).scalar_one_or_none()
    if category is None:
        raise NotFound()  # the caller's write_transaction() rolls back
    return category


def _clean_names(name: str | None, name_en: str | None) -> tuple[str, str | None]:
    name, name_en = (name or "").strip(), (name_en or "").strip() or None
    if not name or len(name) > Category.NAME_MAX or (name_en and len(name_en) > Category.NAME_MAX):
        raise InvalidCategory()
    return name, name_en


def _refuse_duplicate(name: str, name_en: str | None, except_id: int | None = None) -> None:
    """Two categories with the same name (Chinese, or English ignoring case) would look
    like one to buyers and merchants."""
    clash = Category.name == name
    if name_en:
        clash = clash | (func.lower(Category.name_en) == name_en.lower())
    query = _live().where(clash)
    if except_id is not None:
        query = query.where(Category.id != except_id)
    if db.session.execute(query.limit(1)).first() is not None:
        raise DuplicateCategory()  # the caller's write_transaction() rolls back


def _snapshot(category: Category) -> dict:
    return {
        "name": category.name,
        "name_en": category.name_en,
        "position": category.position,
        "hidden": category.hidden,
    }


def create(name: str | None, name_en: str | None, operator_id: int) -> Category:
    """A new, visible category at the end of the order."""
    name, name_en = _clean_names(name, name_en)
    with write_transaction():
        _refuse_duplicate(name, name_en)
        last = db.session.scalar(select(func.max(Category.position)).where(Category.deleted_at.is_(None)))
        category = Category(name=name, name_en=name_en, position=(last or 0) + 1, hidden=False)
        db.session.add(category)
        db.session.flush()
        audit.record(operator_id, "category.created", f"category:{category.id}", after=_snapshot(category))
    return category


def rename(category_id: int, name: str | None, name_en: str | None, operator_id: int) -> Category:
    """Change both names (an empty English name removes it)."""
    name, name_en = _clean_names(name, name_en)
    with write_transaction():
        category = _for_update(category_id)
        if (category.name, category.name_en) == (name, name_en):
            return category  # nothing written: the commit only releases the lock
        _refuse_duplicate(name, name_en, except_id=category.id)
        before = {"name": category.name, "name_en": category.name_en}
        category.name, category.name_en = name, name_en
        audit.record(
            operator_id,
            "category.renamed",
            f"category:{category.id}",
            before=before,
            after={"name": name, "name_en": name_en},
        )
    return category


def _renumbered() -> list[Category]:
    """The live categories in their order, numbered 1, 2, 3 ... (ties and gaps left by
    older data or deletions go), locked for the change that follows."""
    categories = list(db.session.execute(_ordered(_live()).with_for_update()).scalars())
    for number, category in enumerate(categories, start=1):
        category.position = number
    return categories


def _reorder(category_id: int, operator_id: int, place) -> Category:
    with write_transaction():
        _for_update(category_id)
        categories = _renumbered()
        index = next(i for i, c in enumerate(categories) if c.id == category_id)
        category = categories.pop(index)
        before = index + 1
        categories.insert(max(0, min(place(index), len(categories))), category)
        for number, c in enumerate(categories, start=1):
            c.position = number
        if category.position != before:
            audit.record(
                operator_id,
                "category.reordered",
                f"category:{category.id}",
                before={"position": before},
                after={"position": category.position},
            )
    return category


def move(category_id: int, direction: str, operator_id: int) -> Category:
    """One place up (earlier) or down (later); the first stays first, the last last."""
    if direction not in (UP, DOWN):
        raise DomainError()
    return _reorder(category_id, operator_id, lambda index: index - 1 if direction == UP else index + 1)


def set_position(category_id: int, position: int, operator_id: int) -> Category:
    """Put the category at this place of the order (1 is first; past the end is last);
    the others keep their order around it."""
    return _reorder(category_id, operator_id, lambda _index: int(position) - 1)


def set_hidden(category_id: int, hidden: bool, operator_id: int) -> Category:
    with write_transaction():
        category = _for_update(category_id)
        if category.hidden == hidden:
            return category  # nothing written: the commit only releases the lock
        category.hidden = hidden
        audit.record(
            operator_id,
            "category.hidden" if hidden else "category.shown",
            f"category:{category.id}",
            before={"hidden": not hidden},
            after={"hidden": hidden},
            detail=category.name,
        )
    return category


def delete(category_id: int, operator_id: int, move_to: int | None = None) -> int:
    """Delete the category. With live products in it, `move_to` must name another
    category, which receives them all first (in the same transaction); without it the
    deletion is refused with the count. Returns how many products were moved."""
    with write_transaction():
        category = _for_update(category_id)
        count = live_product_count(category.id)
        moved, target = 0, None
        if count:
            if move_to is None:
                raise CategoryNotEmpty(count)
            if move_to == category.id:
                raise InvalidMoveTarget()
            target = db.session.execute(_live().where(Category.id == move_to).with_for_update()).scalar_one_or_none()
            if target is None:
                raise InvalidMoveTarget()
            moved = db.session.execute(
                update(Product)
                .where(Product.category_id == category.id, Product.deleted_at.is_(None))
                .values(category_id=target.id)
                .execution_options(synchronize_session=False)
            ).rowcount
        if moved:
            audit.record(
                operator_id,
                "category.products_moved",
                f"category:{category.id}",
                before={"category_id": category.id},
                after={"category_id": target.id, "products": moved},
                detail=f"{category.name} → {target.name}",
            )
        before = _snapshot(category)
        if db.session.scalar(select(func.count()).select_from(Product).where(Product.category_id == category.id)):
            category.deleted_at = clock.now()  # soft-deleted products still point at it
        else:
            db.session.delete(category)
        audit.record(
            operator_id,
            "category.deleted",
            f"category:{category_id}",
            before=before,
            after={"moved_to": target.id if target else None, "products_moved": moved},
        )
    return moved
