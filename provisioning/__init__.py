"""Provisioning and field tools: enrolment, calibration, card sheets, doctor, Pi deployment."""
