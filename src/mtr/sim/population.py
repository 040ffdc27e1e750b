"""Users: observed attributes and the latent traits behind their outcomes.

Every per-task latent is a mixture `sqrt(rho) * shared + sqrt(1 - rho) * specific` (rho = the world's
`task_correlation`); the shared factor loads negatively on unsubscribe (engaged users opt out less).
Each component is partly explained by observed features, so models can learn it:
premium and tenure -> shared factor and activity, trial -> purchase intent, young / iOS -> engagement,
older / free / web -> unsubscribe proneness, age bucket -> preferred hour, topics and channel affinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mtr.sim.config import AGE_BUCKETS, COUNTRIES, LATENT_ORDER, PLANS, PLATFORMS, TOPICS, WorldConfig

CHANNEL_NAMES = ("push", "email", "in_app")
TASK_SIGN = np.array([1.0, 1.0, 1.0, -1.0])  # loading of the shared factor on each latent (unsubscribe: -1)
OBSERVED_SHARE = 0.4  # share of a latent component's variance explained by observed features
INTEREST_SD = 0.6  # spread of topic interests around the user-level driver
DAY_US = 86_400_000_000

# Observed-feature patterns, indexed by the code of the feature (order of the vocabularies in config).
PLAN_SHARED = np.array([0.0, 0.3, 0.9])
PLAN_PURCHASE = np.array([0.0, 1.0, 0.2])
PLAN_ACTIVITY = np.array([-0.3, 0.0, 0.9])
PLAN_ANNOYANCE = np.array([0.4, 0.0, -0.2])
AGE_ENGAGEMENT = np.array([0.6, 0.4, 0.0, -0.3, -0.5])
AGE_PURCHASE = np.array([-0.2, 0.3, 0.3, 0.0, -0.2])
AGE_ANNOYANCE = np.array([-0.2, 0.0, 0.0, 0.3, 0.5])
AGE_HOUR = np.array([21.0, 19.5, 18.0, 12.5, 9.0])
AGE_TOPIC = np.array(  # [age bucket, topic]: fitness, finance, travel, music, cooking
    [[0.5, -0.4, 0.1, 0.6, -0.3], [0.3, 0.1, 0.3, 0.2, 0.0], [0.0, 0.4, 0.2, -0.2, 0.3], [-0.2, 0.4, 0.1, -0.4, 0.4],
     [-0.4, 0.3, 0.0, -0.5, 0.5]]
)  # fmt: skip
PLATFORM_AFFINITY = np.array([[0.5, -0.1, 0.2], [0.3, 0.0, 0.1], [0.0, 0.3, 0.2]])  # [platform, channel]
AGE_AFFINITY = np.array([[0.3, -0.4, 0.3], [0.2, -0.1, 0.2], [0.0, 0.1, 0.0], [-0.2, 0.3, -0.1], [-0.3, 0.5, -0.3]])
COUNTRY_ENGAGEMENT = np.array([0.0, 0.1, -0.2, 0.3, 0.2])
COUNTRY_PURCHASE = np.array([0.3, 0.2, 0.1, -0.2, -0.4])
# The drivers' names, in LATENT_ORDER.
TRAIT_NAMES = ("engagement_propensity", "purchase_intent", "baseline_activity", "unsubscribe_proneness")


@dataclass(frozen=True)
class Population:
    """N users. Observed codes index the vocabularies in `mtr.sim.config`; the rest is latent.

    Attributes:
        user_id: [N] int64, 1..N.
        signup_us: [N] int64, signup time in epoch microseconds (UTC).
        country, platform, plan, age: [N] int64 codes.
        drivers: [N, 4] per-objective user-level latent drivers (order `LATENT_ORDER`).
        interest: [N, 4, n_topics] per-objective topic interest (order `LATENT_ORDER`).
        affinity: [N, 3] channel affinity (push, email, in_app).
        fatigue_sensitivity: [N] > 0, scales every fatigue effect.
        preferred_hour: [N] in [0, 24).
    """

    user_id: np.ndarray
    signup_us: np.ndarray
    country: np.ndarray
    platform: np.ndarray
    plan: np.ndarray
    age: np.ndarray
    drivers: np.ndarray
    interest: np.ndarray
    affinity: np.ndarray
    fatigue_sensitivity: np.ndarray
    preferred_hour: np.ndarray

    @property
    def size(self) -> int:
        return len(self.user_id)

    def users_frame(self) -> pl.DataFrame:
        """The observed `users` table of the event-log contract."""
        return pl.DataFrame(
            {
                "user_id": pl.Series(self.user_id, dtype=pl.Int64),
                "signup_ts": pl.Series(self.signup_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
                "country": np.array(COUNTRIES)[self.country],
                "platform": np.array(PLATFORMS)[self.platform],
                "plan": np.array(PLANS)[self.plan],
                "age_bucket": np.array(AGE_BUCKETS)[self.age],
            }
        )

    def traits_frame(self) -> pl.DataFrame:
        """The latent traits, one column each (`truth/user_traits.parquet`)."""
        columns: dict[str, np.ndarray] = {"user_id": self.user_id}
        for k, name in enumerate(TRAIT_NAMES):
            columns[name] = self.drivers[:, k]
        for k, task in enumerate(LATENT_ORDER):
            for t, topic in enumerate(TOPICS):
                columns[f"interest_{task}_{topic}"] = self.interest[:, k, t]
        for c, channel in enumerate(CHANNEL_NAMES):
            columns[f"affinity_{channel}"] = self.affinity[:, c]
        columns["fatigue_sensitivity"] = self.fatigue_sensitivity
        columns["preferred_hour"] = self.preferred_hour
        return pl.DataFrame(columns)

    @classmethod
    def from_frames(cls, users: pl.DataFrame, traits: pl.DataFrame) -> Population:
        """Rebuild a population from the `users` table and `truth/user_traits.parquet` (sorted by user_id)."""
        users = users.sort("user_id")
        traits = traits.sort("user_id")

        def codes(column: str, vocabulary: tuple[str, ...]) -> np.ndarray:
            return users[column].replace_strict(list(vocabulary), list(range(len(vocabulary)))).to_numpy()

        per_objective = [[traits[f"interest_{task}_{topic}"].to_numpy() for topic in TOPICS] for task in LATENT_ORDER]
        interest = np.stack([np.stack(topics, 1) for topics in per_objective], 1)
        return cls(
            user_id=users["user_id"].to_numpy(),
            signup_us=users["signup_ts"].dt.epoch("us").to_numpy(),
            country=codes("country", COUNTRIES),
            platform=codes("platform", PLATFORMS),
            plan=codes("plan", PLANS),
            age=codes("age_bucket", AGE_BUCKETS),
            drivers=np.stack([traits[name].to_numpy() for name in TRAIT_NAMES], 1),
            interest=interest,
            affinity=np.stack([traits[f"affinity_{c}"].to_numpy() for c in CHANNEL_NAMES], 1),
            fatigue_sensitivity=traits["fatigue_sensitivity"].to_numpy(),
            preferred_hour=traits["preferred_hour"].to_numpy(),
        )


def make_population(rng: np.random.Generator, n_users: int, world: WorldConfig, log_start_us: int) -> Population:
    """Draw `n_users` users whose latent traits depend on their observed attributes."""
    country = rng.choice(len(COUNTRIES), n_users, p=[0.35, 0.15, 0.15, 0.15, 0.2])
    platform = rng.choice(len(PLATFORMS), n_users, p=[0.4, 0.4, 0.2])
    plan = rng.choice(len(PLANS), n_users, p=[0.6, 0.1, 0.3])
    age = rng.choice(len(AGE_BUCKETS), n_users, p=[0.18, 0.3, 0.24, 0.16, 0.12])
    # Trials are recent signups; other users have been around for a while.
    tenure_days = np.where(plan == 1, rng.uniform(0, 30, n_users), 30 + rng.exponential(500, n_users))
    signup_us = log_start_us - (tenure_days * DAY_US).astype(np.int64)
    tenure = np.log1p(tenure_days)
    ios, web = (platform == 0).astype(float), (platform == 2).astype(float)

    observed = [
        PLAN_SHARED[plan] + 0.3 * tenure + 0.2 * ios,  # shared
        AGE_ENGAGEMENT[age] + 0.3 * ios - 0.3 * web + COUNTRY_ENGAGEMENT[country],  # engagement
        PLAN_PURCHASE[plan] + AGE_PURCHASE[age] + COUNTRY_PURCHASE[country],  # purchase intent
        PLAN_ACTIVITY[plan] + 0.3 * tenure,  # activity
        PLAN_ANNOYANCE[plan] + AGE_ANNOYANCE[age] + 0.2 * web,  # unsubscribe proneness
    ]
    components = np.stack([_partly_observed(rng, h) for h in observed], 1)  # [N, 5]: shared, then LATENT_ORDER
    interests = AGE_TOPIC[age][:, None, :] + rng.normal(0.0, INTEREST_SD, (n_users, 5, len(TOPICS)))
    interests = interests - AGE_TOPIC.mean(0)  # centre so that topic interests average about 0
    drivers = mix_tasks(world.task_correlation, components[:, :1], components[:, 1:])
    interest = mix_tasks(world.task_correlation, interests[:, :1], interests[:, 1:])
    affinity = PLATFORM_AFFINITY[platform] + AGE_AFFINITY[age] + rng.normal(0.0, 0.4, (n_users, 3))
    fatigue = np.exp(rng.normal(0.0, 0.4, n_users) + 0.3 * (age == 4) + 0.2 * (plan == 0))
    preferred_hour = np.mod(AGE_HOUR[age] + rng.normal(0.0, 2.5, n_users), 24.0)
    return Population(
        user_id=np.arange(1, n_users + 1, dtype=np.int64),
        signup_us=signup_us,
        country=country,
        platform=platform,
        plan=plan,
        age=age,
        drivers=drivers,
        interest=interest,
        affinity=affinity,
        fatigue_sensitivity=fatigue,
        preferred_hour=preferred_hour,
    )


def _partly_observed(rng: np.random.Generator, observed: np.ndarray) -> np.ndarray:
    """Unit-variance latent: `OBSERVED_SHARE` of its variance from `observed` [N], the rest noise."""
    spread = observed.std()
    standard = (observed - observed.mean()) / spread if spread > 0 else np.zeros_like(observed)
    return np.sqrt(OBSERVED_SHARE) * standard + np.sqrt(1 - OBSERVED_SHARE) * rng.standard_normal(len(observed))


def mix_tasks(rho: float, shared: np.ndarray, specific: np.ndarray) -> np.ndarray:
    """Per-task mixture sqrt(rho) * sign_k * shared + sqrt(1 - rho) * specific_k along axis 1.

    Args:
        shared: [N, 1, ...] the shared component; specific: [N, 4, ...] one component per task.
    """
    sign = TASK_SIGN.reshape((1, 4) + (1,) * (specific.ndim - 2))
    return np.sqrt(rho) * sign * shared + np.sqrt(1.0 - rho) * specific
