"""REST API v1 of prospects (prospects/api.py), included at api/v1/."""

from django.urls import URLPattern, path

from prospects import api

urlpatterns: list[URLPattern] = [
    path("prospects/", api.ProspectCollectionApi.as_view(), name="api-prospect-list"),
    path("prospects/upsert/", api.ProspectUpsertApi.as_view(), name="api-prospect-upsert"),
    path(
        "prospects/<int:prospect_id>/", api.ProspectDetailApi.as_view(), name="api-prospect-detail"
    ),
    path("lists/", api.ListCollectionApi.as_view(), name="api-list-list"),
    path("lists/<int:list_id>/", api.ListDetailApi.as_view(), name="api-list-detail"),
    path("lists/<int:list_id>/members/", api.ListMembersApi.as_view(), name="api-list-members"),
    path("tasks/", api.TaskCollectionApi.as_view(), name="api-task-list"),
    path("tasks/<int:task_id>/", api.TaskDetailApi.as_view(), name="api-task-detail"),
    path("schema/", api.SchemaApi.as_view(), name="api-schema"),
    path("docs/", api.SchemaDocsApi.as_view(), name="api-docs"),
]
