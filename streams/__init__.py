"""The Faust app: store readings, and (later) judge and escalate them."""
