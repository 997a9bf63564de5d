"""Product images: a cover and a gallery per product, stored re-encoded under content-hashed names.

Each image is kept in two sizes (a square thumbnail for the cards, a detail size for the
product page), each as WebP and as JPEG. The files are named by the SHA-256 of their
bytes (faka/services/product_images.py), so the same picture is one file however many
products show it; a file goes when the last image that names it goes.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class ProductImage(db.Model):
    __tablename__ = "product_images"
    __table_args__ = (
        Index("ix_product_images_product_role_position", "product_id", "role", "position"),
        # The public route looks a requested name up before any file is touched.
        Index("ix_product_images_thumb_webp", "thumb_webp"),
        Index("ix_product_images_thumb_jpeg", "thumb_jpeg"),
        Index("ix_product_images_detail_webp", "detail_webp"),
        Index("ix_product_images_detail_jpeg", "detail_jpeg"),
    )

    COVER = "cover"
    GALLERY = "gallery"
    ROLES = (COVER, GALLERY)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    role: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(default=0)  # the gallery's order; 0 for the cover
    thumb_webp: Mapped[str] = mapped_column(String(72))
    thumb_jpeg: Mapped[str] = mapped_column(String(72))
    detail_webp: Mapped[str] = mapped_column(String(72))
    detail_jpeg: Mapped[str] = mapped_column(String(72))
    thumb_width: Mapped[int]
    thumb_height: Mapped[int]
    detail_width: Mapped[int]
    detail_height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def names(self) -> tuple[str, str, str, str]:
        return (self.thumb_webp, self.thumb_jpeg, self.detail_webp, self.detail_jpeg)

    def size(self, which: str) -> dict:
        """One size's files and dimensions, as the <picture> macro uses them."""
        if which == "thumb":
            return {
                "webp": self.thumb_webp,
                "jpeg": self.thumb_jpeg,
                "width": self.thumb_width,
                "height": self.thumb_height,
            }
        return {
            "webp": self.detail_webp,
            "jpeg": self.detail_jpeg,
            "width": self.detail_width,
            "height": self.detail_height,
        }
