// The SettledStore module.
