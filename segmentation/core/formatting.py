"""Human-readable figures for the console."""


def format_duration(seconds: float) -> str:
    """`3.2s` (under 10 s), `42s`, `9m 55s`, `3h 07m`."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
