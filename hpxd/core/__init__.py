"""The transport-independent core: sessions, auth, application, dispatch, hub.

Nothing in this package knows any door or wire format.
"""
