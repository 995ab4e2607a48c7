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
    # The tenant's directory (Microsoft Graph) in the assign picker; the app's credentials are
    # MicrosoftAppId / MicrosoftAppPassword (application permission User.Read.All).
    graph_enabled: bool = Field(False, alias="GRAPH_ENABLED")
    graph_authority_host: str = Field("https://login.microsoftonline.com", alias="GRAPH_AUTHORITY_HOST")
    graph_api_base: str = Field("https://graph.microsoft.com", alias="GRAPH_API_BASE")
    # botbuilder's authentication settings (same names as its configuration attributes); unset:
    # Microsoft's public cloud endpoints. Tests point them at a local fake.
    to_bot_from_channel_openid_metadata_url: str | None = Field(None, alias="TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL")
    to_bot_from_emulator_openid_metadata_url: str | None = Field(
        None, alias="TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL")
    to_bot_from_channel_token_issuer: str | None = Field(None, alias="TO_BOT_FROM_CHANNEL_TOKEN_ISSUER")
    to_channel_from_bot_login_url: str | None = Field(None, alias="TO_CHANNEL_FROM_BOT_LOGIN_URL")
    to_channel_from_bot_oauth_scope: str | None = Field(None, alias="TO_CHANNEL_FROM_BOT_OAUTH_SCOPE")
    oauth_url: str | None = Field(None, alias="OAUTH_URL")
    validate_authority: bool | None = Field(None, alias="VALIDATE_AUTHORITY")
    caller_id: str | None = Field(None, alias="CALLER_ID")
    channel_service: str | None = Field(None, alias="CHANNEL_SERVICE")
    # Per-user rate limits (``limits`` notation, moving window; "off": none): card actions and
    # messages; typeahead searches. Unset: 20/10 seconds and 60/10 seconds in production mode (an
    # app id), none in local mode. Storage: process memory, or shared (e.g. async+redis://...).
    rate_limit_actions: str | None = Field(None, alias="RATE_LIMIT_ACTIONS")
    rate_limit_searches: str | None = Field(None, alias="RATE_LIMIT_SEARCHES")
    rate_limit_storage: str = Field("async+memory://", alias="RATE_LIMIT_STORAGE")

    @field_validator("payments")
    @classmethod
    def _payments(cls, v: str) -> str:
        """A provider's name (payments.registry knows which exist: it refuses another at start)."""
        return v.strip().lower()

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("rate_limit_actions", "rate_limit_searches")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        from limits import parse

        if v is not None and v.strip().lower() != "off":
            parse(v)  # ValueError on a malformed limit
        return v

    @property
    def allowed_tenant_ids(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.allowed_tenants.split(",") if t.strip())
