//! Business time: weekly hours, holidays and time zones; `due_at` is pure.
