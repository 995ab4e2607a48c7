"""The Action.Execute verbs shared by the card builders and the dialog router."""

POOLS = "pools"
POOL_USERS = "pool.users"  # open a pool's users / page through them
POOL_SEARCH = "pool.search"  # search with the text box
POOL_PICK = "pool.pick"  # add the user picked in the typeahead to the selection
POOL_CLEAR = "pool.clear"  # clear the selection
UPGRADE_TIERS = "upgrade.tiers"
UPGRADE_QUOTE = "upgrade.quote"
QUOTE_REFRESH = "quote.refresh"
QUOTE_CANCEL = "quote.cancel"
QUOTE_BACK = "quote.back"
QUOTE_CONFIRM = "quote.confirm"
HELP = "help"
DISMISS = "dismiss"

DATASET_POOL_USERS = "pool_users"  # typeahead dataset: "pool_users:<pool id>"

# Journeys beyond the upgrade (each implemented by a flow in dialogs/)
BUY_START = "buy.start"  # data: {plan?, interval?} pre-selects a plan
ASSIGN_START = "assign.start"  # data: {pool?}
POOL_UNASSIGN = "pool.unassign"  # data: the users card's selection
DOWNGRADE_CHOOSE = "downgrade.choose"  # data: the users card's selection
SEATS_REMOVE = "seats.remove"  # data: {pool}: the remove-free-seats form
REQUESTS = "requests"  # pending upgrade requests
AUDIT = "audit"  # recent changes
