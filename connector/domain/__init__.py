"""Pure rules of Nudge: model, money, calendar, policies, cadences, fees and preview (no IO, no clock)."""
