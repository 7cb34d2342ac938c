# ruff: noqa: E501
"""Fixture payloads copied from ../shared/protocols/*.md (JSON blocks as data; see each doc for the source).

Names follow the doc order. Messenger `messaging[]` items are wrapped with `page_envelope`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# whatsapp-cloud.md JSON block 0
WA_TEXT: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 1
WA_TEXT_BSUID: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1234567890987654321",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "messages": [
                            {
                                "from": "972987654321",
                                "id": "wamid.xyzxyz",
                                "timestamp": "1697043223",
                                "text": {"body": "Body Text"},
                                "type": "text",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 2
WA_REPLY_MESSAGES: Any = [
    {
        "context": {"from": "972123456789", "id": "wamid.xyzxyz=="},
        "from": "972987654321",
        "id": "wamid.xyzxyz",
        "timestamp": "1697044746",
        "text": {"body": "replied text"},
        "type": "text",
    }
]

# whatsapp-cloud.md JSON block 3
WA_TEXT_CTWA: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "referral": {
                                    "source_url": "https://fb.me/3cr4Wqqkv",
                                    "source_id": "120226305854810726",
                                    "source_type": "ad",
                                    "body": "Summer Succulents are here!",
                                    "headline": "Chat with us",
                                    "media_type": "image",
                                    "image_url": "https://scontent.xx.fbcdn.net/v/t45.1...",
                                    "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0NiNhEgpGo0AHemvuSoifXaytfTzcchptiErTKCqTrJ5nW1h7IHYeYymGb5K5J5iTROpBhWAGaIAeUzHL50",
                                    "welcome_message": {"text": "Hi there! Let us know how we can help!"},
                                },
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
                                "timestamp": "1750275992",
                                "text": {"body": "Can I get more info about this?"},
                                "type": "text",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 4
WA_BUTTON_REPLY: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "context": {
                                    "from": "15550783881",
                                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA",
                                },
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
                                "timestamp": "1750025136",
                                "type": "interactive",
                                "interactive": {
                                    "type": "button_reply",
                                    "button_reply": {"id": "cancel-button", "title": "Cancel"},
                                },
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 5
WA_LIST_REPLY: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "context": {
                                    "from": "15550783881",
                                    "id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
                                },
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                                "timestamp": "1749854575",
                                "type": "interactive",
                                "interactive": {
                                    "type": "list_reply",
                                    "list_reply": {
                                        "id": "priority_express",
                                        "title": "Priority Mail Express",
                                        "description": "Next Day to 2 Days",
                                    },
                                },
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 6
WA_TEMPLATE_BUTTON: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "context": {
                                    "from": "15550783881",
                                    "id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
                                },
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                                "timestamp": "1750091045",
                                "type": "button",
                                "button": {"payload": "Unsubscribe", "text": "Unsubscribe"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 7
WA_TEMPLATE_BUTTON_BSUID: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "5467539754836534",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "messages": [
                            {
                                "context": {"from": "972123456789", "id": "wamid.xyzxyz=="},
                                "from": "972987654321",
                                "id": "wamid.xsidjw",
                                "timestamp": "1698269027",
                                "type": "button",
                                "button": {"payload": "callback_data", "text": "title"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 8
WA_UNSUPPORTED: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1234567890987654321",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "messages": [
                            {
                                "from": "972987654321",
                                "id": "wamid.xyzxyz",
                                "timestamp": "1697044706",
                                "errors": [
                                    {
                                        "code": 131051,
                                        "title": "Message type unknown",
                                        "message": "Message type unknown",
                                        "error_data": {"details": "Message type is currently not supported."},
                                    }
                                ],
                                "type": "unsupported",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 9
WA_STATUS_SENT: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                                "status": "sent",
                                "timestamp": "1750030073",
                                "recipient_id": "16505551234",
                                "conversation": {
                                    "id": "72b14d6bd5407799e66f64d1b338e567",
                                    "expiration_timestamp": "1750116480",
                                    "origin": {"type": "marketing"},
                                },
                                "pricing": {
                                    "billable": True,
                                    "pricing_model": "PMP",
                                    "type": "regular",
                                    "category": "marketing",
                                },
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 10
WA_STATUS_SENT_V24: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                                "status": "sent",
                                "timestamp": "1750030073",
                                "recipient_id": "16505551234",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 11
WA_STATUS_FAILED_131049: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
                                "status": "failed",
                                "timestamp": "1751142888",
                                "recipient_id": "16505551234",
                                "errors": [
                                    {
                                        "code": 131049,
                                        "title": "This message was not delivered "
                                        "to maintain healthy ecosystem "
                                        "engagement.",
                                        "message": "This message was not delivered "
                                        "to maintain healthy ecosystem "
                                        "engagement.",
                                        "error_data": {
                                            "details": "In order to "
                                            "maintain a "
                                            "healthy "
                                            "ecosystem "
                                            "engagement, the "
                                            "message failed "
                                            "to be "
                                            "delivered."
                                        },
                                        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
                                    }
                                ],
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 12
WA_STATUS_DELIVERED: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "5467539754836534",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "statuses": [
                            {
                                "id": "wamid.xyzxyz",
                                "status": "delivered",
                                "timestamp": "1698266945",
                                "recipient_id": "972987654321",
                                "conversation": {
                                    "id": "7270432eae37498234f4444b35ffc5",
                                    "origin": {"type": "service"},
                                },
                                "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 13
WA_STATUS_READ: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "5467539754836534",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "statuses": [
                            {
                                "id": "wamid.xyzxyz",
                                "status": "read",
                                "timestamp": "1689380458",
                                "recipient_id": "972987654321",
                                "conversation": {
                                    "id": "7270432eae37498234f4444b35ffc5",
                                    "origin": {"type": "service"},
                                },
                                "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 14
WA_STATUS_FAILED_130472: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "5467539754836534",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "972123456789",
                            "phone_number_id": "1122334455667",
                        },
                        "contacts": [
                            {
                                "profile": {"name": "Test Name"},
                                "wa_id": "972987654321",
                                "user_id": "US.13491208655302741918",
                                "parent_user_id": "US.ENT.11815799212886844830",
                            }
                        ],
                        "statuses": [
                            {
                                "id": "wamid.xyzxyz",
                                "status": "failed",
                                "timestamp": "1689380458",
                                "recipient_id": "972987654321",
                                "errors": [
                                    {
                                        "code": 130472,
                                        "title": "User's number is part of an experiment",
                                        "message": "User's number is part of an experiment",
                                        "error_data": {
                                            "details": "Failed to send "
                                            "message because "
                                            "this user's "
                                            "phone number is "
                                            "part of an "
                                            "experiment"
                                        },
                                        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                                    }
                                ],
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 15
WA_ERROR_131047: Any = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    },
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}

# whatsapp-cloud.md JSON block 16
WA_STATUS_FAILED_131047: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
                                "status": "failed",
                                "timestamp": "1751142888",
                                "recipient_id": "16505551234",
                                "errors": [
                                    {
                                        "code": 131047,
                                        "title": "Re-engagement message",
                                        "message": "Re-engagement message",
                                        "error_data": {
                                            "details": "Message failed "
                                            "to send because "
                                            "more than 24 "
                                            "hours have "
                                            "passed since "
                                            "the customer "
                                            "last replied to "
                                            "this number."
                                        },
                                        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
                                    }
                                ],
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 17
WA_SYSTEM_ERROR: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "errors": [
                            {
                                "code": 130429,
                                "title": "Rate limit hit",
                                "message": "Rate limit hit",
                                "error_data": {
                                    "details": "Message failed to send "
                                    "because there were too many "
                                    "messages sent from this phone "
                                    "number in a short period of "
                                    "time"
                                },
                                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 18
WA_USER_PREFERENCE_RESUME: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"wa_id": "16505551234"}],
                        "user_preferences": [
                            {
                                "wa_id": "16505551234",
                                "detail": "User requested to resume marketing messages",
                                "category": "marketing_messages",
                                "value": "resume",
                                "timestamp": 1731705721,
                            }
                        ],
                    },
                    "field": "user_preferences",
                }
            ],
        }
    ],
}

# whatsapp-cloud.md JSON block 19
WA_SEND_TEXT: Any = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "text",
    "text": {
        "preview_url": True,
        "body": "As requested, here's the link to our latest product: https://www.meta.com/quest/quest-3/",
    },
}

# whatsapp-cloud.md JSON block 20
WA_SEND_RESPONSE: Any = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
}

# whatsapp-cloud.md JSON block 21
WA_SEND_BUTTONS: Any = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "image", "image": {"id": "2762702990552401"}},
        "body": {
            "text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use "
            "the buttons if you need to reschedule. Thank you!"
        },
        "footer": {"text": "Lucky Shrub: Your gateway to succulents!™"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
            ]
        },
    },
}

# whatsapp-cloud.md JSON block 22
WA_SEND_BUTTONS_RESPONSE: Any = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"}],
}

# whatsapp-cloud.md JSON block 23
WA_SEND_TEMPLATE: Any = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "template",
    "template": {
        "name": "order_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Jessica"},
                    {"type": "text", "text": "SKBUP2-4CPIG9"},
                ],
            }
        ],
    },
}

# whatsapp-cloud.md JSON block 24
WA_SEND_TEMPLATE_NAMED: Any = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "+16505551234",
    "type": "template",
    "template": {
        "name": "order_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Jessica"},
                    {"type": "text", "parameter_name": "order_number", "text": "SKBUP2-4CPIG9"},
                ],
            }
        ],
    },
}

# whatsapp-cloud.md JSON block 25
WA_TEMPLATE_OBJECT: Any = {
    "name": "TEMPLATE_NAME",
    "language": {"policy": "deterministic", "code": "LANGUAGE_AND_LOCALE_CODE"},
    "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "http(s)://URL"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "TEXT_STRING"},
                {
                    "type": "currency",
                    "currency": {"fallback_value": "VALUE", "code": "USD", "amount_1000": 1000},
                },
                {"type": "date_time", "date_time": {"fallback_value": "MONTH DAY, YEAR"}},
            ],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "PAYLOAD"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "1",
            "parameters": [{"type": "payload", "payload": "PAYLOAD"}],
        },
    ],
}

# whatsapp-cloud.md JSON block 26
WA_SEND_TEMPLATE_RESPONSE: Any = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "16505555555", "wa_id": "16505555555"}],
    "messages": [
        {"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA", "message_status": "accepted"}
    ],
}

# whatsapp-cloud.md JSON block 27
GRAPH_ERROR: Any = {
    "error": {
        "message": "Message describing the error",
        "type": "OAuthException",
        "code": 190,
        "error_subcode": 460,
        "error_user_title": "A title",
        "error_user_msg": "A message",
        "fbtrace_id": "EJplcsCHuLu",
    }
}

# whatsapp-cloud.md JSON block 28
GRAPH_ERROR_EXPIRED_TOKEN: Any = {
    "message": "Error validating access token: Session has expired on Friday, 26-Apr-24 06:00:00 PDT. The "
    "current time is Sunday, 28-Apr-24 03:40:10 PDT.",
    "type": "OAuthException",
    "code": 190,
    "error_subcode": 463,
    "fbtrace_id": "ACEyrTehk6IAd0lm05Ixogh",
}

# dialog360.md JSON block 0
D360_STATUS_DELIVERED: Any = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "WHATSAPP_BUSINESS_ACCOUNT_ID",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "PHONE_NUMBER",
                            "phone_number_id": "PHONE_NUMBER_ID",
                        },
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
                                "status": "delivered",
                                "timestamp": "1675175992",
                                "recipient_id": "15551234567",
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

# dialog360.md JSON block 1
D360_SEND_TEMPLATE: Any = {
    "messaging_product": "whatsapp",
    "recipient_type": "individual",
    "to": "15551234567",
    "type": "template",
    "template": {
        "name": "order_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "B67890"}],
            }
        ],
    },
}

# dialog360.md JSON block 2
D360_SEND_RESPONSE: Any = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "15551234567", "wa_id": "15551234567"}],
    "messages": [{"id": "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}],
}

# dialog360.md JSON block 3
D360_ERROR_BLOCKED: Any = {
    "meta": {
        "httpCode": 403,
        "developerMessage": "This URL *** is blocked. More info: "
        "https://docs.360dialog.com/whatsapp-api/whatsapp-api",
        "success": False,
    }
}

# dialog360.md JSON block 4
D360_ERROR_API_KEY: Any = {
    "meta": {"httpCode": 404, "developerMessage": "Invalid api_key or token expired", "success": False}
}

# messenger-instagram.md JSON block 0
MS_ITEM_TEXT_QUICK_REPLY: Any = {
    "sender": {"id": "<PSID>"},
    "recipient": {"id": "<PAGE_ID>"},
    "timestamp": 1458692752478,
    "message": {
        "mid": "mid.1457764197618:41d102a3e1ae206a38",
        "text": "hello, world!",
        "quick_reply": {"payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
    },
}

# messenger-instagram.md JSON block 1
MS_ITEM_POSTBACK: Any = {
    "sender": {"id": "<PSID>"},
    "recipient": {"id": "<PAGE_ID>"},
    "timestamp": 1458692752478,
    "postback": {"title": "<BUTTON_TITLE>", "payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
}

# messenger-instagram.md JSON block 2
MS_ITEM_DELIVERY: Any = {
    "sender": {"id": "<PSID>"},
    "recipient": {"id": "<PAGE_ID>"},
    "delivery": {"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253},
}

# messenger-instagram.md JSON block 3
MS_ITEM_READ: Any = {
    "sender": {"id": "<PSID>"},
    "recipient": {"id": "<PAGE_ID>"},
    "timestamp": 1458668856463,
    "read": {"watermark": 1458668856253},
}

# messenger-instagram.md JSON block 4
IG_POSTBACK: Any = {
    "object": "instagram",
    "entry": [
        {
            "id": "IGSID",
            "time": 1502905976963,
            "messaging": [
                {
                    "sender": {"id": "IGSID"},
                    "recipient": {"id": "IGID"},
                    "timestamp": 1502905976377,
                    "postback": {
                        "mid": "MESSAGE-ID",
                        "title": "SELECTED-ICEBREAKER-REPLY-OR-CTA-BUTTON",
                        "payload": "CUSTOMER-RESPONSE-PAYLOAD",
                    },
                }
            ],
        }
    ],
}

# messenger-instagram.md JSON block 5
IG_READ: Any = {
    "object": "instagram",
    "entry": [
        {
            "id": "IGID",
            "time": 1569262486134,
            "messaging": [
                {
                    "sender": {"id": "IGSID"},
                    "recipient": {"id": "IGID"},
                    "timestamp": 1569262485349,
                    "read": {"mid": "MESSAGE-ID"},
                }
            ],
        }
    ],
}

# messenger-instagram.md JSON block 6
MS_SEND_TEXT: Any = {
    "recipient": {"id": "<PSID>"},
    "messaging_type": "RESPONSE",
    "message": {"text": "Hello, world!"},
}

# messenger-instagram.md §2 text blocks (Meta's doc has a trailing comma; valid JSON here).
MS_ITEM_REFERRAL_EXISTING: Any = {
    "sender": {"id": "PSID"},
    "recipient": {"id": "PAGE-ID"},
    "timestamp": 1458692752478,
    "referral": {"ref": "REF-PARAMETER-INFORMATION", "source": "SHORTLINK", "type": "OPEN_THREAD"},
}
MS_ITEM_REFERRAL_GET_STARTED: Any = {
    "sender": {"id": "PSID"},
    "recipient": {"id": "PAGE-ID"},
    "timestamp": 1458692752478,
    "postback": {
        "payload": "POSTBACK-PAYLOAD-YOU-CONFIGURED",
        "referral": {"ref": "REF-PARAMETER-INFORMATION", "source": "SHORTLINK", "type": "OPEN_THREAD"},
    },
}
# messenger-instagram.md §2 "Instagram message" (annotated syntax; comments removed, commas added).
IG_MESSAGE: Any = {
    "object": "instagram",
    "entry": [
        {
            "id": "IGID",
            "time": 1569262486134,
            "messaging": [
                {
                    "sender": {"id": "IGSID"},
                    "recipient": {"id": "IGID"},
                    "timestamp": 1569262485349,
                    "message": {
                        "mid": "MESSAGE-ID",
                        "text": "MESSAGE-TEXT",
                        "quick_reply": {"payload": "CUSTOMER-RESPONSE-PAYLOAD"},
                        "reply_to": {"mid": "MESSAGE-ID"},
                    },
                }
            ],
        }
    ],
}
IG_ECHO: Any = {
    "object": "instagram",
    "entry": [
        {
            "id": "IGID",
            "time": 1569262486134,
            "messaging": [
                {
                    "sender": {"id": "IGID"},
                    "recipient": {"id": "IGSID"},
                    "timestamp": 1569262485349,
                    "message": {"mid": "MESSAGE-ID-ECHO", "text": "MESSAGE-TEXT", "is_echo": True},
                }
            ],
        }
    ],
}

# whatsapp-cloud.md §4.7: the same user_preferences payload with value "stop" (the doc shows "resume").
WA_USER_PREFERENCE_STOP: Any = copy.deepcopy(WA_USER_PREFERENCE_RESUME)
WA_USER_PREFERENCE_STOP["entry"][0]["changes"][0]["value"]["user_preferences"][0].update(
    value="stop", detail="User requested to stop marketing messages"
)


# Per-message pricing (since July 2025): a free service reply inside the window, as Meta reports it
# (whatsapp-cloud.md §4.5: `pricing.type` free_customer_service, category service, not billable).
WA_STATUS_DELIVERED_FREE_SERVICE: Any = copy.deepcopy(WA_STATUS_SENT)
WA_STATUS_DELIVERED_FREE_SERVICE["entry"][0]["changes"][0]["value"]["statuses"][0].update(
    status="delivered",
    recipient_id="4915112345678",
    pricing={
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    },
)
WA_STATUS_DELIVERED_FREE_SERVICE["entry"][0]["changes"][0]["value"]["statuses"][0].pop("conversation")

# Messenger marketing messages turned off / on by the person (messaging_optins, type
# notification_messages, notification_messages_status STOP_NOTIFICATIONS / RESUME_NOTIFICATIONS).
MS_ITEM_OPTIN_STOP: Any = {
    "sender": {"id": "<PSID>"},
    "recipient": {"id": "<PAGE_ID>"},
    "timestamp": 1458692752478,
    "optin": {
        "type": "notification_messages",
        "payload": "newsletter",
        "notification_messages_token": "<NOTIFICATION_MESSAGES_TOKEN>",
        "notification_messages_status": "STOP_NOTIFICATIONS",
    },
}
MS_ITEM_OPTIN_RESUME: Any = copy.deepcopy(MS_ITEM_OPTIN_STOP)
MS_ITEM_OPTIN_RESUME["timestamp"] = 1458692799999
MS_ITEM_OPTIN_RESUME["optin"]["notification_messages_status"] = "RESUME_NOTIFICATIONS"


def page_envelope(*items: dict[str, Any], page_id: str = "<PAGE_ID>", obj: str = "page") -> dict[str, Any]:
    """Wrap `messaging[]` items in the documented envelope (messenger-instagram.md §2)."""
    return {
        "object": obj,
        "entry": [{"id": page_id, "time": 1458692752478, "messaging": [copy.deepcopy(i) for i in items]}],
    }


# Every inbound webhook fixture, by provider; each must parse without error.
WHATSAPP_WEBHOOKS: dict[str, Any] = {
    "text": WA_TEXT,
    "text_bsuid": WA_TEXT_BSUID,
    "text_ctwa": WA_TEXT_CTWA,
    "button_reply": WA_BUTTON_REPLY,
    "list_reply": WA_LIST_REPLY,
    "template_button": WA_TEMPLATE_BUTTON,
    "template_button_bsuid": WA_TEMPLATE_BUTTON_BSUID,
    "unsupported": WA_UNSUPPORTED,
    "status_sent": WA_STATUS_SENT,
    "status_sent_v24": WA_STATUS_SENT_V24,
    "status_failed_131049": WA_STATUS_FAILED_131049,
    "status_delivered": WA_STATUS_DELIVERED,
    "status_read": WA_STATUS_READ,
    "status_failed_130472": WA_STATUS_FAILED_130472,
    "status_failed_131047": WA_STATUS_FAILED_131047,
    "system_error": WA_SYSTEM_ERROR,
    "preference_resume": WA_USER_PREFERENCE_RESUME,
    "preference_stop": WA_USER_PREFERENCE_STOP,
    "status_delivered_free_service": WA_STATUS_DELIVERED_FREE_SERVICE,
}
DIALOG360_WEBHOOKS: dict[str, Any] = {**WHATSAPP_WEBHOOKS, "d360_status_delivered": D360_STATUS_DELIVERED}
MESSENGER_WEBHOOKS: dict[str, Any] = {
    "text_quick_reply": page_envelope(MS_ITEM_TEXT_QUICK_REPLY),
    "postback": page_envelope(MS_ITEM_POSTBACK),
    "delivery": page_envelope(MS_ITEM_DELIVERY),
    "read": page_envelope(MS_ITEM_READ),
    "referral_existing": page_envelope(MS_ITEM_REFERRAL_EXISTING),
    "referral_get_started": page_envelope(MS_ITEM_REFERRAL_GET_STARTED),
    "optin_stop": page_envelope(MS_ITEM_OPTIN_STOP),
    "optin_resume": page_envelope(MS_ITEM_OPTIN_RESUME),
}
INSTAGRAM_WEBHOOKS: dict[str, Any] = {
    "message": IG_MESSAGE,
    "postback": IG_POSTBACK,
    "read": IG_READ,
    "echo": IG_ECHO,
}


# --- connecting a konsent channel account to the fake (tests only) -----------------------------

WA_PHONE_ID = "106540352242922"  # the phone_number_id of Meta's own examples
WA_DISPLAY = "15550783881"
PAGE_ID = "1122334455667788"
IG_ID = "17841400000000001"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "verify-token-123"
D360_HEADER = "x-konsent-webhook-token"


@dataclass(frozen=True)
class Connected:
    tenant_id: int
    account_id: int
    route_key: str
    kind: str


def account_values(kind: str, fake_url: str = "http://127.0.0.1:9") -> tuple[dict[str, Any], dict[str, str]]:
    """(settings, secrets) an admin would enter for each kind, pointed at the fake."""
    common = {"timeout_s": 1.0}
    if kind == "whatsapp":
        return (
            {
                **common,
                "phone_number_id": WA_PHONE_ID,
                "display_phone_number": WA_DISPLAY,
                "api_base": f"{fake_url}/v21.0",
            },
            {"access_token": "EAAJB-test-token", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        )
    if kind == "dialog360":
        return (
            {
                **common,
                "display_phone_number": WA_DISPLAY,
                "api_base": f"{fake_url}/d360",
                "webhook_header_name": D360_HEADER,
            },
            {"api_key": "d360-key-abc", "webhook_header_value": "d360-shared-secret-xyz"},
        )
    if kind == "messenger":
        return (
            {**common, "page_id": PAGE_ID, "page_name": "demogmbh", "api_base": f"{fake_url}/v21.0"},
            {"page_access_token": "EAAP-page-token", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        )
    if kind == "instagram":
        return (
            {
                **common,
                "page_id": PAGE_ID,
                "ig_account_id": IG_ID,
                "ig_username": "demo.gmbh",
                "api_base": f"{fake_url}/v21.0",
            },
            {"page_access_token": "EAAP-page-token", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        )
    raise KeyError(kind)


def connect(ctx: Any, kind: str, fake: Any = None) -> Connected:
    """The demo tenant connects a `kind` account (pointed at `fake` when given)."""
    from konsent.flows.demo import seed_demo
    from konsent.flows.organisation import tenants

    seed_demo(ctx)
    settings, secrets_ = account_values(kind, fake.url if fake is not None else "http://127.0.0.1:9")
    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        acc = tenants.create_channel_account(
            ctx, s, tenant, kind, f"{kind} test", settings=settings, secrets_=secrets_
        )
        conn = Connected(tenant.id, acc.id, acc.route_key, kind)
    if fake is not None:
        if kind == "whatsapp":
            fake.add_phone(WA_PHONE_ID, secrets_["access_token"], APP_SECRET, display=WA_DISPLAY)
        elif kind == "dialog360":
            fake.add_phone(
                WA_PHONE_ID,
                "",
                "",
                display=WA_DISPLAY,
                d360_key=secrets_["api_key"],
                d360_headers={D360_HEADER: secrets_["webhook_header_value"]},
            )
        else:
            fake.add_page(
                PAGE_ID,
                secrets_["page_access_token"],
                APP_SECRET,
                obj="page" if kind == "messenger" else "instagram",
            )
    return conn


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """Headers of a Meta delivery of `body`."""
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": sig}


def meta_bytes(payload: Any) -> bytes:
    """A payload serialised as Meta sends it: compact and ASCII-escaped."""
    return json.dumps(payload, separators=(",", ":")).encode()


def request_code(ctx: Any, conn: Connected, topics: list[str], locale: str = "en") -> Any:
    from konsent.flows.consent import optin
    from konsent.flows.organisation import tenants

    with ctx.db.write() as s:
        tenant = tenants.tenant_by_slug(s, "demo")
        return optin.request_opt_in(
            ctx,
            s,
            tenant,
            channel_account_id=conn.account_id,
            topic_slugs=topics,
            locale=locale,
            source_url="https://shop.example/newsletter",
            ip="203.0.113.9",
            user_agent="pytest",
        )


def deliver(client: Any, conn: Connected, deliveries: list[Any]) -> list[int]:
    """Hand the fake's webhooks to konsent over HTTP; return the status codes."""
    return [
        client.post(f"/webhooks/{conn.route_key}", content=d.body, headers=d.headers).status_code
        for d in deliveries
    ]


@pytest.fixture
def fake() -> Iterator[Any]:
    """A running Meta/360dialog fake on 127.0.0.1; stopped after the test."""
    from tests.fakes.meta_fake import MetaFake

    with MetaFake(max_lifetime_s=120) as f:
        yield f


def run_send(adapter: Any, account: Any, address: str, content: Any) -> Any:
    """One adapter.send on a fresh loop, closing the adapter's session in the same loop."""

    async def go() -> Any:
        try:
            return await adapter.send(account, address, content)
        finally:
            await adapter.close()

    return asyncio.run(go())


def account_config(kind: str, fake: Any, **settings: Any) -> Any:
    from konsent.channels.base import AccountConfig

    values, secrets_ = account_values(kind, fake.url)
    return AccountConfig(1, kind, settings={**values, **settings}, secrets=secrets_)


# --- mutation fuzzing --------------------------------------------------------------------------

_WEIRD: list[Any] = [
    None, True, 0, -1, 2**63, 1e308, "", " ", "\x00", "a" * 5000, "ü\u202e\ud7ff", "KS0123456789",
    "wamid.dup", "<script>", [], {}, [None], {"x": 1}, "1749416383", "99999999999999999999",
]  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def mutate(payload: Any, rng: Any) -> Any:
    """A random structural mutation of a fixture: drop, retype, duplicate, add, empty."""
    doc = copy.deepcopy(payload)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(doc)
        path = rng.choice(paths)
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = rng.random()
        if op < 0.25:
            del parent[key]
        elif op < 0.6:
            parent[key] = copy.deepcopy(rng.choice(_WEIRD))
        elif op < 0.75 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op < 0.85 and isinstance(parent, dict):
            parent[rng.choice(["zz_unknown", "type", "status", "field", "object", "messaging"])] = rng.choice(
                _WEIRD
            )
        elif isinstance(parent[key], list | dict):
            parent[key] = type(parent[key])()
        else:
            parent[key] = str(parent[key]) + rng.choice(["", "x", "\u00e4", "0"])
    return doc


def mutate_bytes(body: bytes, rng: Any) -> bytes:
    """Byte-level damage: truncation, a flipped byte, or junk inserted."""
    if not body:
        return b"\xff"
    i = rng.randrange(len(body))
    op = rng.random()
    if op < 0.3:
        return body[:i]
    if op < 0.7:
        return body[:i] + bytes([body[i] ^ (1 << rng.randrange(8))]) + body[i + 1 :]
    return body[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + body[i:]


def check_events(events: list[Any]) -> None:
    """What the store relies on: short printable ids and kinds, aware timestamps."""
    for ev in events:
        pid = getattr(ev, "provider_id", "")
        assert len(pid) <= 200 and pid.isprintable() and "\x00" not in pid, pid[:80]
        kind = getattr(ev, "kind", "")
        assert len(kind) <= 64
        at = getattr(ev, "at", None)
        assert at is None or at.tzinfo is not None
