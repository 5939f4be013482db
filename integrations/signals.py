"""What the domain announces for the floors above to hear (docs/architecture.md).

`token_authenticated(sender=BearerTokenAuthentication, user=..., token=...)` is sent when an
API request proves who it is by a bearer token. The middleware's audit context opened before
DRF knew the user; `audit.capture` listens and names the user in it, so history rows and
audit events written by the request name the token's owner.
"""

from django.dispatch import Signal

token_authenticated = Signal()
