// The SettledConfig module.
