"""Configuration from the environment, with embedded defaults (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    port: int = Field(3978, alias="PORT")
    database_url: str = Field(f"sqlite:///{ROOT / 'var' / 'license-desk.db'}", alias="DATABASE_URL")
    public_base_url: str = Field("http://localhost:3978", alias="PUBLIC_BASE_URL")
    payments: str = Field("sandbox", alias="PAYMENTS")
    stripe_api_key: SecretStr | None = Field(None, alias="STRIPE_API_KEY")
    stripe_webhook_secret: SecretStr | None = Field(None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(None, alias="STRIPE_API_BASE")
    quote_ttl_minutes: int = Field(30, alias="QUOTE_TTL_MINUTES", ge=1, le=24 * 60)
    app_id: str = Field("", alias="MicrosoftAppId")
    app_password: SecretStr = Field(SecretStr(""), alias="MicrosoftAppPassword")
    app_tenant_id: str = Field("", alias="MicrosoftAppTenantId")
    allowed_tenants: str = Field("", alias="ALLOWED_TENANTS")
    link_secret: SecretStr | None = Field(None, alias="LINK_SECRET")

    @field_validator("payments")
    @classmethod
    def _payments(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in {"sandbox", "stripe"}:
            raise ValueError("PAYMENTS must be 'sandbox' or 'stripe'")
        return v

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return v.rstrip("/")

    @property
    def allowed_tenant_ids(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.allowed_tenants.split(",") if t.strip())
