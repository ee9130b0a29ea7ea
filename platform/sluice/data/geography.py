"""Countries, time zones, locales and names the synthetic base draws from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    code: str
    share: float
    calling_code: str
    locale: str
    zones: tuple[str, ...]
    effect: float
    """Shift of the latent log purchase rate (market maturity)."""


COUNTRIES: tuple[Country, ...] = (
    Country("US", 0.34, "1", "en-US", ("America/New_York", "America/Chicago", "America/Denver",
                                       "America/Los_Angeles"), 0.15),
    Country("CA", 0.05, "1", "en-CA", ("America/Toronto", "America/Vancouver"), 0.05),
    Country("GB", 0.12, "44", "en-GB", ("Europe/London",), 0.10),
    Country("IE", 0.02, "353", "en-IE", ("Europe/Dublin",), 0.0),
    Country("DE", 0.10, "49", "de-DE", ("Europe/Berlin",), 0.05),
    Country("FR", 0.07, "33", "fr-FR", ("Europe/Paris",), 0.0),
    Country("ES", 0.04, "34", "es-ES", ("Europe/Madrid",), -0.10),
    Country("IT", 0.04, "39", "it-IT", ("Europe/Rome",), -0.10),
    Country("NL", 0.03, "31", "nl-NL", ("Europe/Amsterdam",), 0.05),
    Country("SE", 0.02, "46", "sv-SE", ("Europe/Stockholm",), 0.0),
    Country("AU", 0.05, "61", "en-AU", ("Australia/Sydney", "Australia/Perth"), 0.05),
    Country("NZ", 0.01, "64", "en-NZ", ("Pacific/Auckland",), 0.0),
    Country("JP", 0.04, "81", "ja-JP", ("Asia/Tokyo",), -0.15),
    Country("BR", 0.04, "55", "pt-BR", ("America/Sao_Paulo",), -0.25),
    Country("IN", 0.03, "91", "en-IN", ("Asia/Kolkata",), -0.30),
)  # fmt: skip

FIRST_NAMES: tuple[str, ...] = (
    "Ada", "Ahmed", "Aiko", "Alba", "Alex", "Amara", "Ana", "Anders", "Anna", "Aria",
    "Ben", "Bruno", "Camille", "Carla", "Chen", "Chloe", "Dara", "David", "Diego", "Elena",
    "Elif", "Emil", "Emma", "Erik", "Eva", "Felix", "Finn", "Freya", "Gabriel", "Grace",
    "Hana", "Hugo", "Ines", "Isla", "Ivan", "Jack", "Jana", "Javier", "Jonas", "Julia",
    "Kai", "Kenji", "Lara", "Leo", "Lina", "Lucas", "Luca", "Maya", "Mateo", "Mia",
    "Nadia", "Noah", "Nora", "Olga", "Omar", "Oscar", "Paula", "Priya", "Rafael", "Ravi",
    "Rosa", "Ruby", "Sam", "Sara", "Sofia", "Sven", "Tara", "Theo", "Tomas", "Vera",
    "Yara", "Yuki", "Zoe", "Zara", "Marta", "Pedro", "Ingrid", "Aditi", "Kofi", "Lena",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Andersson", "Bauer", "Becker", "Bianchi", "Brown", "Carter", "Costa", "Dubois", "Eriksen",
    "Fischer", "Garcia", "Green", "Hansen", "Hughes", "Ito", "Jansen", "Johnson", "Kim",
    "Kowalski", "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura", "Nguyen",
    "Novak", "Olsen", "Patel", "Perez", "Rossi", "Santos", "Schmidt", "Silva", "Smith",
    "Suzuki", "Tanaka", "Taylor", "Visser", "Walsh", "Weber", "Williams", "Wilson", "Young",
)  # fmt: skip
