// The SettledHTTP module.
