"""People's tasks: phone a customer (`call`) or take over an escalated debt (`handoff`).

The executor opens a task for each call-task and escalation action through `StoreTaskDesk` (idempotent by
the action key); a person completes it with what was said (`complete_task`), which leaves a `task.completed`
activity (the timeline note) and, when the step asks for it, a NOTE action in the outbox that writes the
outcome on the invoice in the ledger exactly once. `nudge tasks` lists and completes them (commands.py).
"""
