"""What a product link shows when it is pasted into WeChat, QQ or any app that reads Open
Graph tags: a title, a short plain-text description, a picture and the price, all with
absolute addresses (FAKA_BASE_URL), since the app fetching them knows no other."""

import html
import re
from dataclasses import dataclass

import nh3
from flask import current_app

from faka.core.text import markdown
from faka.payments.cashier import absolute_url
from faka.payments.gateways.base import yuan_text

DESCRIPTION_CHARS = 110  # what a chat card shows in two or three lines
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ShareCard:
    title: str
    description: str
    url: str
    image: str | None
    image_width: int | None
    image_height: int | None
    price: str  # "48.00": the lowest price of a product with several variants
    currency: str
    # A product with variants of different prices: the highest price, and how many variants
    # it offers (the page's AggregateOffer); None and 1 otherwise.
    high_price: str | None = None
    offer_count: int = 1


def plain_summary(markdown_text: str | None, limit: int = DESCRIPTION_CHARS) -> str:
    """The merchant's Markdown as one line of plain text, cut at `limit` characters."""
    text = html.unescape(nh3.clean(str(markdown(markdown_text)), tags=set()))
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def share_card(listing, fallback_description: str = "") -> ShareCard:
    """The share tags of a product on sale (a catalog Listing, with its images loaded)."""
    product = listing.product
    image = listing.cover or (listing.gallery[0] if listing.gallery else None)
    return ShareCard(
        title=product.title,
        description=plain_summary(product.description_md) or fallback_description,
        url=absolute_url("catalog.product", slug=product.slug),
        image=absolute_url("catalog.product_image", name=image.detail_jpeg) if image else None,
        image_width=image.detail_width if image else None,
        image_height=image.detail_height if image else None,
        price=yuan_text(product.price),
        currency=current_app.config["CURRENCY"],
        high_price=yuan_text(product.price_max) if product.price_max > product.price else None,
        offer_count=len(product.live_variants),
    )
