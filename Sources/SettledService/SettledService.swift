// The SettledService module.
