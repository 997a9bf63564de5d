"""The complaint center for buyers: open a complaint from the order page, follow its
thread, answer the merchant's offer, escalate or withdraw. The order token is the key."""
from flask import Blueprint

bp = Blueprint("complaints", __name__)
