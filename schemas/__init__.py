"""The single declarative source of truth for the three base libraries, their code tables and ID validators."""

from schemas.catalogue import Field, Library, PersonalData, Sharing
from schemas.libraries import LEGAL_PERSON, LIBRARIES, LICENCE, POPULATION, library

__all__ = ["Field", "Library", "PersonalData", "Sharing", "LIBRARIES", "POPULATION", "LEGAL_PERSON", "LICENCE", "library"]
