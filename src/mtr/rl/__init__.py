"""The long-term track: journeys of sends over months as sequential decisions (an environment, trajectories from
logs, fitted-Q evaluation and learning)."""
