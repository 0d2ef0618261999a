"""Learning-rate schedules: `plans` (pure math and each schedule's options), `schedulers` (torch glue),
`restore` (what a resume does to a schedule)."""
