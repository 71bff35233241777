"""The MQTT layer kiosks and BLE receivers share: the asyncio paho link, the topic router,
contract validation, topic helpers and the demo broker."""
