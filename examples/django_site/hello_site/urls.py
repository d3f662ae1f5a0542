"""GET /hello/<name> answers; GET /peers lists hello-django instances through discovery."""

import os

from django.http import HttpRequest, JsonResponse
from django.urls import path

from fyerreg.contrib.django import state


def hello(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse({"message": f"Hello {name}", "pid": os.getpid()})


def peers(request: HttpRequest) -> JsonResponse:
    found = state().discovery.instances("hello-django", "1.0.0")
    return JsonResponse(sorted(inst.address for inst in found), safe=False)


urlpatterns = [path("hello/<str:name>", hello), path("peers", peers)]
