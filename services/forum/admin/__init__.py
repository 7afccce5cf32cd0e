"""The admin home: one page for staff linking every tool they may use, with counts."""
